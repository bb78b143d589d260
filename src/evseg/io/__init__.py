"""evseg.io: TODO."""
