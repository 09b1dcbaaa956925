"""The browser side of the bot: SII's guide, step by step, in a Playwright page.

- ``scripts``: the JavaScript run in SII's pages, as data;
- ``records``: what the flows share about a job and its page (``Labels``, the labels of the controls
  the bot clicks; ``Snapshot``, ``Document``, ``SeenDialog``, ``Done``, ``Job``);
- ``controls``: ``Controls`` (dialogs, waits, clicks, form filling, typed failures with evidence,
  progress reporting);
- ``session``: the browser context of a job, and ``Session`` (login, company, user list, edit screen,
  logout) that every flow runs in;
- ``enroll``, ``revoke``, ``replace``, ``read_users``: one module per kind of job;
- ``jobs``: ``run_job``, the entry point the engine calls.

Nothing is saved unless SII's own page (confirmation, edit screen) shows exactly the requested
company, user and permissions; logout always runs.
"""

from .jobs import run_job
from .read_users import ReadUsersFlow

__all__ = ["ReadUsersFlow", "run_job"]
