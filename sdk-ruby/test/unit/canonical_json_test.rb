# frozen_string_literal: true

require "test_helper"

# A cache key made from a message (RPC::Message#write_canonical_json) is the
# key of its wire JSON form (to_h), for every message of the API.
class CanonicalJsonTest < Minitest::Test
  Cache = Secinfra::Runtime::ResponseCache

  MESSAGES = Secinfra::V1.constants.map { |c| Secinfra::V1.const_get(c) }
                         .select { |c| c.is_a?(Class) && c < Secinfra::RPC::Message }

  # A wire JSON value for one element of +field+ (+depth+ bounds nesting).
  def sample_value(field, depth)
    case field.kind
    when :int32, :uint32 then 7
    when :int64, :uint64 then "9"
    when :double, :float then 1.5
    when :bool then true
    when :string then "a\"é\n/"
    when :bytes then "aGk="
    when :enum then field.type::VALUES.last
    when :timestamp then "2026-11-22T08:00:00Z"
    when :struct then { "z" => false, "a" => [1, nil, "x"] }
    when :message then depth < 3 ? sample(field.type, depth + 1) : {}
    end
  end

  # Every field set (one member per oneof).
  def sample(klass, depth = 0)
    oneofs = {}
    klass::FIELDS.each_with_object({}) do |f, h|
      next if f.oneof && oneofs.key?(f.oneof)

      oneofs[f.oneof] = true if f.oneof
      value = sample_value(f, depth)
      h[f.json] = if f.map? then { f.map_key == :bool ? "true" : "k" => value }
                  elsif f.repeated? then [value, value]
                  else value
                  end
    end
  end

  def test_every_message_gives_the_key_of_its_wire_form
    refute_empty MESSAGES
    MESSAGES.each do |klass|
      [klass.new, klass.from_h(sample(klass))].each do |message|
        assert_equal Cache.key("s/M", message.to_h), Cache.key("s/M", message), klass.name
      end
    end
  end

  def test_a_message_set_from_ruby_values
    tuple = Secinfra::V1::TupleKey.new(user: "workload:spiffe://x/y", relation: "viewer", object: "doc:1")
    request = Secinfra::V1::CheckRequest.new(tuple_key: tuple, contextual_tuples: [tuple, tuple], revision: "12")
    assert_equal Cache.key("m", request.to_h), Cache.key("m", request)
    with_hash = Secinfra::V1::CheckRequest.new(tuple_key: { "user" => "u", "object" => "o", "relation" => "r" })
    assert_equal Cache.key("m", with_hash.to_h), Cache.key("m", with_hash)
  end
end
