"""Test support: real RabbitMQ vhosts, real databases, services in and out of process."""
