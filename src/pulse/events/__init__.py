"""Events: the contract every path validates against, the simulator, and loading into `raw`."""
