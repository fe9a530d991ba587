# frozen_string_literal: true

module Secinfra
  # Metrics built on observers (spec 14.4), with no metrics library: read
  # the counts and hand them to yours (a Prometheus collector, StatsD, a log
  # line).
  module Metrics
    # Thread-safe counters of a client's calls by RPC and outcome, attempts
    # by RPC and status, cache lookups by RPC and result, and renewals by
    # outcome (from rotation events, spec 9.8). Register it as an observer,
    # and subscribe it to rotation events for the renewals:
    #
    #   counters = Secinfra::Metrics::Counters.new
    #   client = Secinfra::Client.enrol(url, join_token: token, bundle_file: "bundle.pem",
    #                                   observers: [counters])
    #   client.on_rotation { |event| counters.rotation(event) }
    #   ...
    #   counters.calls   # => {["secinfra.v1.SecretsService/GetSecret", "ok"] => 12, ...}
    #
    # Every reader returns a frozen copy, taken at once under the lock.
    class Counters < Observer
      # The outcome of a successful call; a failed one counts under its error code.
      OK = "ok"

      def initialize
        super
        @lock = Mutex.new
        @calls = Hash.new(0)
        @attempts = Hash.new(0)
        @cache_lookups = Hash.new(0)
        @renewals = Hash.new(0)
      end

      # @return [Hash{Array(String, String) => Integer}] calls by [rpc, outcome]:
      #   +"ok"+ or the error's code (+"not_found"+, +"unavailable"+, ...)
      def calls = read(@calls)

      # @return [Hash{Array(String, Integer, nil) => Integer}] attempts by
      #   [rpc, HTTP status], the status nil for an attempt that got no answer
      def attempts = read(@attempts)

      # @return [Hash{Array(String, Symbol) => Integer}] cache lookups by
      #   [rpc, result]: +:hit+, +:miss+ or +:revalidate+
      def cache_lookups = read(@cache_lookups)

      # @return [Hash{Symbol => Integer}] renewals by outcome: +:ok+ or +:failed+
      def renewals = read(@renewals)

      # @api private (observer notification)
      def cache(lookup) = count(@cache_lookups, [lookup.rpc, lookup.result])

      # @api private (observer notification)
      def attempt_finished(attempt) = count(@attempts, [attempt.rpc, attempt.status])

      # @api private (observer notification)
      def call_finished(call) = count(@calls, [call.rpc, call.ok ? OK : call.code])

      # Counts a rotation event: a renewal (+:renewed+, +:renewal_failed+);
      # other kinds are not renewals and are ignored.
      #
      # @param event [RotationEvent]
      def rotation(event)
        case event.kind
        when :renewed then count(@renewals, :ok)
        when :renewal_failed then count(@renewals, :failed)
        end
        nil
      end

      def inspect = "#<Secinfra::Metrics::Counters calls=#{calls.values.sum}>"
      alias to_s inspect

      private

      def count(table, key)
        @lock.synchronize { table[key] += 1 }
        nil
      end

      def read(table) = @lock.synchronize { table.dup }.freeze
    end
  end
end
