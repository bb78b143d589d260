"""evseg.baselines: TODO."""
