"""The one error root of jobsys and its shallow tree.

    JobsysError                  anything jobsys reports to a user (one line, an exit code)
    ├── ConfigError              a bad environment variable or option
    ├── DefinitionError          a bad job or schedule definition, or an app that will not load
    │   └── CronError            a cron expression or timezone that is not valid
    ├── DatabaseError            the database cannot be reached or is not usable
    │   └── SchemaError          the schema is not at the current migration
    ├── NotFound                 an id or name that does not exist
    └── Conflict                 the request clashes with the current state

Messages name what failed (the variable, the schedule id, the cron field) so that the
CLI can print them as they are.
"""

from __future__ import annotations


class JobsysError(Exception):
    """Base of every error jobsys reports to a user."""

    exit_code = 2


class ConfigError(JobsysError):
    """A configuration value is missing or malformed."""


class DefinitionError(JobsysError):
    """A job or schedule definition is invalid, or the application cannot be loaded."""


class CronError(DefinitionError):
    """A cron expression or a timezone is invalid."""


class DatabaseError(JobsysError):
    """The database cannot be reached or used."""


class SchemaError(DatabaseError):
    """The database schema is not at the current migration."""


class NotFound(JobsysError):
    """The named object does not exist."""


class Conflict(JobsysError):
    """The request conflicts with the current state."""
