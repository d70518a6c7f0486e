"""The privacy policy in its own words: the vocabulary, the versions as data, the EU/EEA, the periods, the DPV terms."""
