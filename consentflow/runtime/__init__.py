"""How the processes run: the compiled build, gc and malloc tuning, the decoding child, progress, health, stops, outages."""
