"""The `executor:` section of the config: the relayer's key, its guards and its fees.

`Executor` takes this model as it is; the app resolves nothing into another shape.
"""

from __future__ import annotations

from pydantic import SecretStr

from chain.fields import Address, Bool, ConfigPath, Duration, Int, Section, Wei
from chain.units import ETHER, GWEI


class ExecutorSettings(Section):
    keystore: ConfigPath | None = None
    password_env: str | None = None
    password_file: ConfigPath | None = None
    raw_key: SecretStr | None = None  # devnet only
    relayer: Address | None = None
    dry_run: Bool | None = None  # None: dry-run unless a key is configured
    max_batch_size: Int = 100
    min_relayer_balance: Wei = ETHER // 20
    intent_ttl: Duration = 24 * 3600
    max_jobs_per_session: Int = 3
    rate_window: Duration = 3600
    # Batching (docs/executor.md, "Batches and isolation"): only tokens the factory's
    # registry lists share a batch; `batch_tokens`, when set, narrows that further.
    batch_tokens: list[Address] | None = None
    batch_member_gas: Int = 100_000  # closeBatch's gas stipend per member
    single_close_gas_cap: Int = 300_000  # the highest gas limit of a close sent alone
    max_fee_per_gas: Wei | None = None
    base_fee_multiplier: Int = 2
    tip_percentile: Int = 50
    min_tip: Wei = GWEI
    replacement_bump_percent: Int = 13
    replace_after_blocks: Int = 3
    gas_margin_percent: Int = 25
    # Relayer protection (docs/executor.md, "Relayer protection").
    max_mined_without_effect: Int = 2  # mined closes that closed nothing before failing
    max_gas_per_hour: Int = 500_000_000  # relayer-wide: the circuit breaker's budget

    @property
    def has_key(self) -> bool:
        return self.keystore is not None or self.raw_key is not None
