# frozen_string_literal: true

require "minitest/autorun"
require "secinfra"
require "secinfra/testing"

# Shared helpers for the unit tests.
module TestSupport
  # A retry budget that never runs out (for rule tests that are not about it).
  def big_budget = Secinfra::Runtime::RetryBudget.new(capacity: 1_000_000)

  def response(status, headers = {}) = Secinfra::Runtime::AttemptResponse.new(status, headers)

  def failure(sent:, timeout: false) = Secinfra::Runtime::AttemptFailure.new(sent, timeout)
end

# Certificates made in the test: a CA per call, leaves it signs.
module TestCerts
  # A self-signed CA for trust domain +td+: [certificate, key].
  def ca(td = "secinfra.local", name: "test CA")
    key = OpenSSL::PKey::EC.generate("prime256v1")
    cert = OpenSSL::X509::Certificate.new
    cert.version = 2
    cert.serial = 1
    cert.subject = cert.issuer = OpenSSL::X509::Name.parse("/CN=#{name}")
    cert.public_key = key
    cert.not_before = Time.now - 60
    cert.not_after = Time.now + 3600
    ef = OpenSSL::X509::ExtensionFactory.new(cert, cert)
    cert.add_extension(ef.create_extension("basicConstraints", "CA:TRUE", true))
    cert.add_extension(ef.create_extension("subjectAltName", "URI:spiffe://#{td}", false))
    cert.sign(key, OpenSSL::Digest.new("SHA256"))
    [cert, key]
  end

  # A leaf for +key+ with the URI SANs +uris+, signed by the CA.
  # +extensions+: more [name, value, critical] triples (a CA leaf: ["basicConstraints", "CA:TRUE", true]).
  def leaf(ca_cert, ca_key, key, uris, not_before: Time.now - 60, not_after: Time.now + 3600, serial: 0xabc,
           extensions: [])
    cert = OpenSSL::X509::Certificate.new
    cert.version = 2
    cert.serial = serial
    cert.subject = OpenSSL::X509::Name.new
    cert.issuer = ca_cert.subject
    cert.public_key = key
    cert.not_before = not_before
    cert.not_after = not_after
    ef = OpenSSL::X509::ExtensionFactory.new(ca_cert, cert)
    cert.add_extension(ef.create_extension("subjectAltName", uris.map { |u| "URI:#{u}" }.join(","), false))
    extensions.each { |name, value, critical| cert.add_extension(ef.create_extension(name, value, critical)) }
    cert.sign(ca_key, OpenSSL::Digest.new("SHA256"))
    cert
  end
end
