"""The contracts at the edge: released Avro schemas, topics, typed constructors, the codec, the gate, dead letters,
event files, and the arguments every reader's questions are checked against."""

from consentflow.runtime.native import package_path

# Its compiled modules (the decoding plans), when built from these sources (consentflow.runtime.native).
__path__ = package_path(__path__, "contracts")
