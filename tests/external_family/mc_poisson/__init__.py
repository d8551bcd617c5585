"""mc_poisson: a Poisson family for modelcollapse, registered by an entry point."""
