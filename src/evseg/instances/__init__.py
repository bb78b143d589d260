"""evseg.instances: TODO."""
