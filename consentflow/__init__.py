"""consentflow"""

from consentflow.native import package_path

# The processors' compiled build, when one was made from these sources (consentflow.native).
__path__ = package_path(__path__)
