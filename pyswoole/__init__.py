"""pyswoole: Swoole's model of long-running, event-driven network services, for Python."""

__version__ = "0.1.0"
