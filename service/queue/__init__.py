"""Redis Streams job queue: key names, the job and result schemas, and the operations on them."""
