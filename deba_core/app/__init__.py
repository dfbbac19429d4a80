"""The ``deba`` command line and its application code (study, datasets, small models).

Nothing in the library imports this package: it is a user of the library like any other.
"""
