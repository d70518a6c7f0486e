"""The processors: what the policy makes of each event, with no I/O (ledger, enforcement, lineage, retention,
holdings, rights), over the per-subject state. Every driver (worker, embedded run, replay) calls the same code."""

from consentflow.runtime.native import package_path

# Its compiled modules, when built from these sources (consentflow.runtime.native).
__path__ = package_path(__path__, "core")
