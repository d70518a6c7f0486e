"""consentflow"""
