"""Test infrastructure, not tests: the services the suite starts or reaches (MariaDB databases, moto's S3 server,
RabbitMQ and Celery workers, uvicorn), the fakes of remote services (a RAWG replay, a fault-injecting proxy), and
the rule that puts every test using one of them under the `integration` marker (`markers`).

`tests/conftest.py` holds the fixtures, each a few lines over these modules.
"""
