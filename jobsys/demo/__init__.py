"""The built-in demo application (``JOBSYS_APP`` unset, or ``jobsys.demo:app``).

A dating site's background jobs (matching, feed, search, maintenance, media, quiz) that
do real, small work on their own ``demo_`` tables in the jobsys database. Importing this
package defines the jobs and schedules only; SQLAlchemy is loaded when a job runs.
"""

from __future__ import annotations

from jobsys.demo.jobs import app

__all__ = ["app"]
