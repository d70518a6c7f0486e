"""sinks"""

from consentflow.runtime.native import package_path

# Its compiled modules, when built from these sources (consentflow.runtime.native).
__path__ = package_path(__path__, "sinks")
