# frozen_string_literal: true

module Secinfra
  module MTLS
    # Decides whether a verified peer's SPIFFE ID may talk to us. It runs
    # after the X509-SVID checks, so it only ever sees an ID whose chain
    # verified to the current trust bundle. There is no default: every TLS
    # configuration is built with one, and accepting any peer of the trust
    # domain is spelled {Authorizer.any}.
    #
    #   Secinfra::MTLS::Authorizer.id("spiffe://secinfra.local/billing")
    #   Secinfra::MTLS::Authorizer.one_of("spiffe://secinfra.local/a", "spiffe://secinfra.local/b")
    #   Secinfra::MTLS::Authorizer.member_of("secinfra.local")
    #   Secinfra::MTLS::Authorizer.path_prefix("spiffe://secinfra.local/payments")
    #   Secinfra::MTLS::Authorizer.predicate("an ops tool") { |id| id.end_with?("/ops") }
    class Authorizer
      # @return [String] what the authorizer accepts, for refusal messages
      attr_reader :description

      # Any peer whose X509-SVID verified (so: of the trust bundle's trust domain).
      def self.any = new("any SPIFFE ID of the trust domain") { |_id| true }

      # Exactly +spiffe_id+.
      def self.id(spiffe_id)
        wanted = SpiffeID.parse(spiffe_id)
        new("the SPIFFE ID #{wanted}") { |id| id == wanted }
      end

      # Any of +spiffe_ids+ (at least one).
      def self.one_of(*spiffe_ids)
        wanted = spiffe_ids.flatten.map { |s| SpiffeID.parse(s) }
        raise ArgumentError, "secinfra: mtls: Authorizer.one_of needs at least one SPIFFE ID" if wanted.empty?

        set = wanted.to_h { |id| [id, true] }
        new("one of #{wanted.map(&:to_s).join(", ")}") { |id| set.key?(id) }
      end

      # Any ID of trust domain +trust_domain+ (+"secinfra.local"+ or +"spiffe://secinfra.local"+).
      def self.member_of(trust_domain)
        name = SpiffeID.parse_trust_domain(trust_domain)
        new("a member of trust domain #{name}") { |id| id.member_of?(name) }
      end

      # +prefix+ itself and every ID below it in its trust domain, segment by
      # segment: +spiffe://td/payments+ accepts +spiffe://td/payments/api+,
      # not +spiffe://td/payments-admin+.
      def self.path_prefix(prefix)
        wanted = SpiffeID.parse(prefix)
        new("#{wanted} or an ID below it") { |id| id.under?(wanted) }
      end

      # The block decides; it is given the peer's SPIFFE ID as a String and
      # accepts with a truthy result. A block that raises refuses.
      #
      # @param description [String] said in refusals ("an ops tool")
      def self.predicate(description = "a custom predicate", &block)
        raise ArgumentError, "secinfra: mtls: Authorizer.predicate needs a block" if block.nil?

        new(description) { |id| block.call(id.to_s) }
      end

      private_class_method :new

      # @api private
      def initialize(description, &rule)
        @description = description.to_s.dup.freeze
        @rule = rule
        freeze
      end

      # Whether +spiffe_id+ is accepted.
      #
      # @param spiffe_id [SpiffeID]
      # @return [Boolean]
      # @raise [StandardError] whatever a predicate raised (the caller refuses)
      def authorized?(spiffe_id) = @rule.call(spiffe_id) ? true : false

      def inspect = "#<Secinfra::MTLS::Authorizer #{@description}>"
      alias to_s inspect
    end
  end
end
