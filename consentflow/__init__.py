"""consentflow"""

from consentflow.runtime.native import package_path

# The processors' compiled build, when one was made from these sources (consentflow.runtime.native).
__path__ = package_path(__path__)
