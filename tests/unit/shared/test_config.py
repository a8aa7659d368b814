"""Transport security as configuration: `shared.config.amqp_ssl`."""

from __future__ import annotations

import ssl

import pytest

from shared import config

VARIABLES = (
    "AMQP_SSL",
    "AMQP_SSL_CA",
    "AMQP_SSL_CERT",
    "AMQP_SSL_KEY",
    "AMQP_SSL_SERVER_HOSTNAME",
    "AMQP_URI",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for variable in VARIABLES:
        monkeypatch.delenv(variable, raising=False)


def test_without_tls_settings_connections_are_plain():
    assert config.amqp_ssl() is None
    assert config.nameko_config()["AMQP_SSL"] is None


def test_ca_cert_and_key_make_a_verified_connection_to_the_uris_host(monkeypatch):
    monkeypatch.setenv("AMQP_URI", "amqps://dispatch:secret@rabbitmq.linkage.svc:5671/linkage")
    monkeypatch.setenv("AMQP_SSL_CA", "/etc/linkage-tls/ca.crt")
    monkeypatch.setenv("AMQP_SSL_CERT", "/etc/linkage-tls/tls.crt")
    monkeypatch.setenv("AMQP_SSL_KEY", "/etc/linkage-tls/tls.key")
    expected = {
        "ca_certs": "/etc/linkage-tls/ca.crt",
        "certfile": "/etc/linkage-tls/tls.crt",
        "keyfile": "/etc/linkage-tls/tls.key",
        "cert_reqs": ssl.CERT_REQUIRED,
        "server_hostname": "rabbitmq.linkage.svc",
    }
    assert config.amqp_ssl() == expected
    assert config.nameko_config()["AMQP_SSL"] == expected  # nameko hands it to kombu as `ssl`


def test_a_ca_alone_checks_the_broker_without_a_client_certificate(monkeypatch):
    monkeypatch.setenv("AMQP_SSL_CA", "/ca.pem")
    monkeypatch.setenv("AMQP_SSL_SERVER_HOSTNAME", "broker.example.org")
    assert config.amqp_ssl() == {
        "ca_certs": "/ca.pem",
        "cert_reqs": ssl.CERT_REQUIRED,
        "server_hostname": "broker.example.org",
    }


def test_json_options_replace_the_separate_variables(monkeypatch):
    monkeypatch.setenv("AMQP_SSL_CA", "/ignored.pem")
    monkeypatch.setenv("AMQP_SSL", '{"ca_certs": "/ca.pem", "cert_reqs": 2}')
    assert config.amqp_ssl() == {"ca_certs": "/ca.pem", "cert_reqs": 2}


@pytest.mark.parametrize("raw", ["true", '["/ca.pem"]', "{not json"])
def test_json_options_must_be_an_object(monkeypatch, raw):
    monkeypatch.setenv("AMQP_SSL", raw)
    with pytest.raises(ValueError):
        config.amqp_ssl()
