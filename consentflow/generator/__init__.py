"""The realistic event generator shared by the demo, the tests and the benchmarks."""
