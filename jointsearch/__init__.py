"""jointsearch: joint neural-architecture and hyperparameter search.

The code lives in four folders at the repository root (search/, spaces/, trainers/,
dashboards/) that install as sub-packages of this one; see pyproject.toml.
"""

__version__ = "0.1.0"
