"""evseg.train: TODO."""
