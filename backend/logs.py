"""Process logging: where the backend's log lines go, and what they may never contain.

Every log handler the product installs (``cachier-backend``'s stderr, the dashboard's
"Backend log" view) carries :class:`RedactSecrets`. The code does not log secrets on
purpose; the filter is the second line of defence for what libraries log on their own,
such as a request URL that carries a dashboard's SSO secret in its path.
"""

from __future__ import annotations

import logging
import re
import sys

# A dashboard URL's secret is the path segment after /dashboard/; URL user-info
# (scheme://user:password@host) and secret-looking query parameters are redacted too.
_PATTERNS = [
    (re.compile(r"(/dashboard/)[^/\s\"'?#]+"), r"\1<secret>"),
    (re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@\"']+@"), r"\1<credentials>@"),
    (
        re.compile(r"([?&](?:token|password|secret|key|sso|access_token)=)[^&\s\"']+", re.I),
        r"\1<secret>",
    ),
    (re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1<secret>"),
]

# Libraries that log every request at INFO, URL included: the dashboard polls once a
# second, so those lines would flood its log view and carry dashboard secrets.
CHATTY_LOGGERS = ("httpx", "httpcore")


def redact(text: str) -> str:
    """``text`` with every secret-carrying URL part replaced by a placeholder."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactSecrets(logging.Filter):
    """Rewrites a record's final message so that no handler can emit a secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def quiet_chatty_loggers() -> None:
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def install(handler: logging.Handler, level: int = logging.INFO) -> None:
    """Make ``handler`` the root logger's only handler, redacting, at ``level``."""
    handler.addFilter(RedactSecrets())
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    quiet_chatty_loggers()


def log_to_stderr(level: int = logging.INFO) -> None:
    """``cachier-backend``'s log: one line per record on stderr (the banner is stdout)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    install(handler, level)
