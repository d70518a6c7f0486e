"""The ``consentflow`` command line: the group, and every command registered on it from its own module.

The command modules never import this one: what they share is in ``consentflow.cli.shared`` (defaults, helpers),
``consentflow.cli.options`` (option types and decorators) and ``consentflow.cli.dpo_output`` (the DPO's questions).
"""

from __future__ import annotations

import click

from consentflow.cli import (
    access,
    audit,
    compliance,
    consent,
    event_files,
    incidents,
    lineage,
    notary,
    openlineage,
    pipeline,
    policy,
    registry,
    rights_requests,
    ropa,
    schemas,
    serve,
    topics,
)


@click.group()
@click.version_option(package_name="consentflow")
def main() -> None:
    """Consent ledger and data lineage for the platform's privacy policy."""
    from consentflow.runtime.gc_tuning import tune_for_streaming

    tune_for_streaming()  # every command: the streaming ones (run, worker, sink, replay) are faster, the others unaffected


main.add_command(access.dsar_command)
main.add_command(audit.replay)
main.add_command(audit.verify)
main.add_command(compliance.violations_command)
main.add_command(compliance.retention)
main.add_command(compliance.erasure_notices_command)
main.add_command(consent.consent_command)
main.add_command(event_files.generate)
main.add_command(event_files.summarise)
main.add_command(event_files.produce)
main.add_command(event_files.convert)
main.add_command(event_files.decode)
main.add_command(incidents.incident_group)
main.add_command(lineage.who_has_command)
main.add_command(lineage.countries_command)
main.add_command(lineage.breach_command)
main.add_command(lineage.transfers_command)
main.add_command(notary.notary)
main.add_command(notary.checkpoint_group)
main.add_command(notary.proof_command)
main.add_command(notary.verify_proof)
main.add_command(openlineage.openlineage_group)
main.add_command(pipeline.run)
main.add_command(pipeline.overview_command)
main.add_command(pipeline.worker)
main.add_command(pipeline.sink)
main.add_command(pipeline.digest)
main.add_command(policy.policy_group)
main.add_command(registry.registry_group)
main.add_command(rights_requests.requests_command)
main.add_command(ropa.ropa_command)
main.add_command(schemas.schemas)
main.add_command(serve.serve)
main.add_command(serve.api_key)
main.add_command(topics.topics)
