"""evseg.augment: TODO."""
