"""evseg.data: TODO."""
