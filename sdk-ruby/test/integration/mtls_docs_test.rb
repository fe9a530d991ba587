# frozen_string_literal: true

require_relative "server_helper"
require "minitest/mock"

# Runs every ```ruby example of docs/mtls/ruby.md, in order and in one
# binding, against the reference server, then checks what they said they
# would give.
class MTLSDocsTest < Minitest::Test
  GUIDE = File.expand_path("../../../docs/mtls/ruby.md", __dir__)
  ORDERS = "spiffe://secinfra.local/orders"
  BILLING = "spiffe://secinfra.local/billing"

  # [first line number, code] of each ```ruby block.
  def examples
    text = File.read(GUIDE)
    text.to_enum(:scan, /^```ruby\n(.*?)^```$/m).map { [$~.pre_match.count("\n") + 2, $~[1]] }
  end

  def test_the_guide_examples_run
    server = SharedServer.get
    env = { "SECINFRA_URL" => server.url, "SECINFRA_BUNDLE_FILE" => server.bundle_file,
            "ORDERS_JOIN_TOKEN" => server.join_token(ORDERS), "BILLING_JOIN_TOKEN" => server.join_token(BILLING) }
    saved = env.keys.to_h { |k| [k, ENV.fetch(k, nil)] }
    env.each { |k, v| ENV[k] = v }
    scope = binding
    blocks = examples
    assert_operator blocks.size, :>=, 5
    Logger.stub(:new, Logger.new(File::NULL)) do # the refusal example logs a warning
      blocks.each { |line, code| eval(code, scope, GUIDE, line) } # the guide's own examples, in its binding
    end

    assert_equal "hello #{BILLING}", scope.local_variable_get(:answer)
    assert_equal ORDERS, scope.local_variable_get(:server_id)
    assert_equal ORDERS, scope.local_variable_get(:peer)
    assert_equal "HTTP/1.1 200 OK\r\n", scope.local_variable_get(:status_line)
    refusal = scope.local_variable_get(:refusal)
    assert_equal [:unauthorized, ORDERS], [refusal.rule, refusal.peer_id]
    assert_equal "secinfra: mtls: refused peer #{ORDERS}: it is not accepted by the authorizer " \
                 "(it accepts the SPIFFE ID spiffe://secinfra.local/payments)", refusal.message
    payments = scope.local_variable_get(:payments)
    assert payments.authorized?(Secinfra::SpiffeID.parse("spiffe://secinfra.local/payments/api"))
    refute payments.authorized?(Secinfra::SpiffeID.parse("spiffe://secinfra.local/payments-admin"))
    assert scope.local_variable_get(:server).closed?
  ensure
    saved&.each { |k, v| ENV[k] = v }
  end
end
