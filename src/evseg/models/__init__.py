"""evseg.models: TODO."""
