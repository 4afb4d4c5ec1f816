"""The reputation stage's ``[reputation]`` config section, decoded strictly.

Owns the window, the minimum volume and the global thresholds (a tenant's own, in its
settings, override them field by field: ``levels.Thresholds``). The warm-up schedule is
``[pools.warmup]`` (``shared.pools``), which the deliverer reads too.

Why the default levels:

- bounce (hard bounces / sent): warning 5%, pause 10%. Amazon SES puts an account under
  review at a 5% bounce rate and may pause it at 10%; a list with that many dead addresses
  was bought, scraped or left unused for years.
- complaint (complaints / delivered): warning 0.1%, pause 0.5%. SES reviews at 0.1% and may
  pause at 0.5%; Gmail and Yahoo's bulk sender rules (February 2024) require staying under
  0.3% and advise under 0.1%, so a warning at 0.1% leaves room to act before 0.3%.
- block (policy rejections / sent): warning 5%, pause 20%. No provider publishes a level.
  Blocks are often about the shared sending IP (a blocklist listing) rather than one
  tenant, so pausing every tenant on a shared address for its blocks would be wrong; 20%
  catches the tenant whose own mail (content, authentication) the providers refuse, while
  the warning at 5% tells the operator early.
- min_messages 200: below it one bounce would be 0.5% or more; SES likewise judges rates
  only on "a representative volume".

``[reputation.credentials]`` is compromised-account detection (``credentials.py``; the
reasoning behind its defaults is in docs/compromised-accounts.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import msgspec

from shared.config import Config, Duration

SECTION = "reputation"

#: A threshold: above 0 (a level of 0 would hold every scope), at most 1.
Fraction = Annotated[float, msgspec.Meta(gt=0.0, le=1.0)]

#: Levels that must not cross: a warning above its pause level would never be seen.
_PAIRS = (
    ("bounce_warning", "bounce_pause"),
    ("complaint_warning", "complaint_pause"),
    ("block_warning", "block_pause"),
)


class CredentialsConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``[reputation.credentials]``: when a credential's sending rises enough over its own
    baseline to hold it (docs/compromised-accounts.md explains each figure)."""

    enabled: bool = True  # count credentials' sending and hold the ones that rise too far
    #: The length of a bucket: the "now" a credential's sending is judged over (whole
    #: minutes, 5m to 1d).
    bucket: Duration = Duration(3600)
    #: How many buckets before the current one make the baseline (1 to 1000; a week of
    #: hours by default, so a weekly newsletter is part of its sender's normal).
    baseline_buckets: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 168
    #: Held when the bucket's messages reach this multiple of the baseline's mean (and
    #: ``min_messages``).
    volume_factor: Annotated[float, msgspec.Meta(ge=1.5, le=10_000.0)] = 10.0
    #: The fewest messages in a bucket that can hold a credential for volume (2 messages
    #: yesterday and 20 today is no attack); with no baseline, ``volume_factor`` times this.
    min_messages: Annotated[int, msgspec.Meta(ge=1, le=10_000_000)] = 50
    #: Held when recipients per message reach this multiple of the baseline's (and
    #: ``min_recipients``).
    recipients_factor: Annotated[float, msgspec.Meta(ge=1.5, le=10_000.0)] = 5.0
    #: The fewest recipients in a bucket that can hold a credential for recipients per message.
    min_recipients: Annotated[int, msgspec.Meta(ge=1, le=10_000_000)] = 200
    #: Held when distinct recipient domains reach this multiple of the baseline's mean (and
    #: ``min_domains``).
    domains_factor: Annotated[float, msgspec.Meta(ge=1.5, le=10_000.0)] = 10.0
    #: The fewest distinct recipient domains in a bucket that can hold a credential for them;
    #: with no baseline, ``domains_factor`` times this.
    min_domains: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 50
    #: Held when this share of the bucket's scanned messages got a spam verdict (rejected,
    #: soft_rejected, quarantined), once ``share_min_messages`` were scanned.
    spam_share: Fraction = 0.3
    #: Held when this share of the bucket's recipients bounced hard, once it holds
    #: ``share_min_messages`` accepted messages.
    hard_bounce_share: Fraction = 0.2
    #: The fewest scanned (spam) or accepted (hard bounces) messages in a bucket before a
    #: share can hold a credential.
    share_min_messages: Annotated[int, msgspec.Meta(ge=1, le=10_000_000)] = 20
    #: Message ids remembered (with their credential, from the accepted events) to attribute
    #: hard bounces, whose events name no credential; about 150 bytes each.
    bounce_memory: Annotated[int, msgspec.Meta(ge=0, le=10_000_000)] = 200_000

    def __post_init__(self) -> None:
        # Duration is a float subclass msgspec cannot bound with Meta: checked here.
        if not 300 <= self.bucket <= 86400 or self.bucket % 60:
            raise ValueError(f"bucket must be whole minutes from 5m to 1d, got {self.bucket:g}s")


class ReputationConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Everything the reputation stage reads from ``[reputation]``."""

    #: The rolling window the rates are over, whole hours (1h to 30d); it ends at the newest
    #: event time seen, so a replay gives the same rates.
    window: Duration = Duration(24 * 3600)
    #: Final outcomes (sent) a window must hold before its rates count: a tiny sender is not
    #: paused for one bounce.
    min_messages: Annotated[int, msgspec.Meta(ge=1, le=10_000_000)] = 200
    bounce_warning: Fraction = 0.05  # hard bounces / sent at which a warning event fires
    bounce_pause: Fraction = 0.10  # hard bounces / sent at which the tenant/domain is paused
    complaint_warning: Fraction = 0.001  # complaints / delivered: warning
    complaint_pause: Fraction = 0.005  # complaints / delivered: pause
    block_warning: Fraction = 0.05  # policy blocks / sent: warning
    block_pause: Fraction = 0.20  # policy blocks / sent: pause (see the module docstring)
    #: A warning ends (a "recovered" event) once every rate is under this share of its
    #: warning level, so a rate hovering at the level does not flap between the two.
    recover_ratio: Annotated[float, msgspec.Meta(gt=0.0, le=1.0)] = 0.8
    #: Message ids remembered (tenant and sending domain, from the deliverer's events) to
    #: attribute asynchronous bounces, complaints and unsubscribes, whose events lack the
    #: sender; about 250 bytes each. Older ones count for their event's tenant only.
    attribution_cache: Annotated[int, msgspec.Meta(ge=0, le=10_000_000)] = 200_000
    #: The bounce rule table to classify replies with; unset: ``[bouncer] rules_file``, else
    #: the table shipped with Postline (the bouncer and this stage then agree).
    rules_file: Path | None = None
    #: Compromised-account detection: ``[reputation.credentials]``.
    credentials: CredentialsConfig = CredentialsConfig()

    def __post_init__(self) -> None:
        # Duration is a float subclass msgspec cannot bound with Meta: checked here.
        if not 3600 <= self.window <= 30 * 86400 or self.window % 3600:
            raise ValueError(f"window must be whole hours from 1h to 30d, got {self.window:g}s")
        for warning, pause in _PAIRS:
            if getattr(self, warning) > getattr(self, pause):
                raise ValueError(f"{warning} must not be above {pause}")

    @property
    def window_hours(self) -> int:
        """The window in hours."""
        return int(self.window // 3600)

    def rule_table_path(self, bouncer: dict[str, object]) -> Path | None:
        """The rule table file: ours, else the bouncer's (raw ``[bouncer]``: a stage never
        imports another's config), else ``None`` (the shipped table)."""
        if self.rules_file is not None:
            return self.rules_file
        other = bouncer.get("rules_file")
        return Path(str(other)) if other else None


def load_reputation_config(config: Config) -> ReputationConfig:
    """Decode ``[reputation]``; raises ``ConfigError`` naming the file and key."""
    return config.section(SECTION, ReputationConfig)
