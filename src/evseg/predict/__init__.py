"""evseg.predict: TODO."""
