"""streams"""

from consentflow.native import package_path

# Its compiled modules, when built from these sources (consentflow.native).
__path__ = package_path(__path__, "streams")
