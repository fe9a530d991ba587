# frozen_string_literal: true

# secinfra quickstart (docs/quickstart.md): enrol, read a secret, check a permission.
#
# Settings come from the environment:
#
# SECINFRA_URL::         the server, e.g. https://127.0.0.1:8443
# SECINFRA_JOIN_TOKEN::  a one-time join token for this workload
# SECINFRA_BUNDLE_FILE:: the trust bundle to verify the server with, e.g. .dev/data/admin/bundle.pem
#
# Run it with `bash sdk-ruby/examples/run-quickstart.sh` from the repository root.

require "secinfra"

SECRET_NAME = "payments/db/password"

url, join_token, bundle_file = %w[SECINFRA_URL SECINFRA_JOIN_TOKEN SECINFRA_BUNDLE_FILE].map do |name|
  ENV.fetch(name) { abort("quickstart: set #{name}") }
end

begin
  # Enrol: the key pair is generated here and never leaves this process; the
  # client renews the certificate by itself for as long as it is open.
  client = Secinfra::Client.enrol(url, join_token: join_token, bundle_file: bundle_file)
  begin
    secret = client.secrets.get_secret(name: SECRET_NAME)
    puts "secret #{SECRET_NAME}: version #{secret.version}, #{secret.value.bytesize} bytes"

    # Ask whether this workload (the SPIFFE ID it enrolled as) may read it.
    me = client.identity.get_caller_identity
    decision = client.authz.check(
      tuple_key: Secinfra::Models::TupleKey.new(
        user: "workload:#{me.spiffe_id}", relation: "reader", object: "secret:#{SECRET_NAME}"
      )
    )
    puts "can read #{SECRET_NAME}: #{decision.allowed}"
  ensure
    client.close
  end
rescue Secinfra::Error => e
  # Errors carry code, message and request id; never the secret's value.
  warn "quickstart: #{e.message}"
  exit 1
end
