"""rc-archiver: archives a company's RingCentral call recordings, unattended, and never loses one."""

__version__ = "0.1.0"
