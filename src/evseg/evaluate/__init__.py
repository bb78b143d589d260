"""evseg.evaluate: TODO."""
