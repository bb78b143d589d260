"""evseg.measure: TODO."""
