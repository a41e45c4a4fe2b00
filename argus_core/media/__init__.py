"""Media: sources, the one media clock, the one decode loop (sampler) and frame renditions."""
