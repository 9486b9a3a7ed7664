"""The locustfile Locust imports for ``python -m locust_ext``: the user class the command built in this process.

Nothing is written to disk: the command builds its user class in memory, then hands Locust this file, which
only exposes that class under its name.
"""

from locust_ext.command import built_user_classes

__all__ = [user_class.__name__ for user_class in built_user_classes()]
globals().update({user_class.__name__: user_class for user_class in built_user_classes()})
