"""The broker: the only package that imports pika. One robust connection and the one loop-thread bridge."""
