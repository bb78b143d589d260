"""evseg.data: TODO."""
from evseg.data.synthetic import SyntheticImage, synthetic_tem_dataset, synthetic_tem_image  # noqa: F401
