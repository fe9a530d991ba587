# frozen_string_literal: true

require "test_helper"

# Peer authorizers (mtls/authorizer.rb).
class AuthorizerTest < Minitest::Test
  Authorizer = Secinfra::MTLS::Authorizer

  def id(text) = Secinfra::SpiffeID.parse(text)

  def test_each_authorizer_accepts_what_it_says
    cases = [
      ["any", Authorizer.any, %w[spiffe://td/a spiffe://td], []],
      ["id", Authorizer.id("spiffe://td/a"), %w[spiffe://td/a], %w[spiffe://td/a/b spiffe://td/b spiffe://other/a]],
      ["one_of", Authorizer.one_of("spiffe://td/a", "spiffe://td/b"), %w[spiffe://td/a spiffe://td/b],
       %w[spiffe://td/c spiffe://other/a]],
      ["one_of (an array)", Authorizer.one_of(["spiffe://td/a"]), %w[spiffe://td/a], %w[spiffe://td/b]],
      ["member_of", Authorizer.member_of("td"), %w[spiffe://td/a spiffe://td/a/b], %w[spiffe://other/a]],
      ["member_of (spiffe://)", Authorizer.member_of("spiffe://td"), %w[spiffe://td/a], %w[spiffe://tdx/a]],
      ["path_prefix", Authorizer.path_prefix("spiffe://td/payments"),
       %w[spiffe://td/payments spiffe://td/payments/api],
       %w[spiffe://td/payments-admin spiffe://td/pay spiffe://other/payments/api]],
      ["predicate", Authorizer.predicate("ops tools") { |s| s.end_with?("/ops") }, %w[spiffe://td/x/ops],
       %w[spiffe://td/x]]
    ]
    cases.each do |name, authorizer, accepted, refused|
      accepted.each { |s| assert authorizer.authorized?(id(s)), "#{name} accepts #{s}" }
      refused.each { |s| refute authorizer.authorized?(id(s)), "#{name} refuses #{s}" }
    end
  end

  def test_the_predicate_is_given_the_id_as_a_string
    seen = []
    Authorizer.predicate { |s| seen << s }.authorized?(id("spiffe://td/a"))
    assert_equal ["spiffe://td/a"], seen
  end

  def test_bad_arguments_are_refused_when_built
    assert_raises(ArgumentError) { Authorizer.id("https://td/a") }
    assert_raises(ArgumentError) { Authorizer.one_of }
    assert_raises(ArgumentError) { Authorizer.member_of("Not A Domain") }
    assert_raises(ArgumentError) { Authorizer.path_prefix("spiffe://td/a/") }
    assert_raises(ArgumentError) { Authorizer.predicate }
    assert_raises(NoMethodError) { Authorizer.new("x") }
  end

  def test_descriptions_say_what_is_accepted
    assert_equal "one of spiffe://td/a, spiffe://td/b", Authorizer.one_of("spiffe://td/a", "spiffe://td/b").description
    assert_equal "a member of trust domain td", Authorizer.member_of("td").description
    assert_equal "spiffe://td/p or an ID below it", Authorizer.path_prefix("spiffe://td/p").description
  end
end
