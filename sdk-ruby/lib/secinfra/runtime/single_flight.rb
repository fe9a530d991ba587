# frozen_string_literal: true

module Secinfra
  module Runtime
    # Concurrent callers for one key share one request (spec 7.8).
    class SingleFlight
      # Raised to a waiter whose own deadline passed first.
      class Timeout < StandardError; end

      # One request in flight.
      class Flight
        attr_accessor :done, :value, :error

        def initialize
          @lock = Mutex.new
          @cond = ConditionVariable.new
          @done = false
        end

        def finish(value, error)
          @lock.synchronize do
            @value = value
            @error = error
            @done = true
            @cond.broadcast
          end
        end

        # Waits up to +timeout+ seconds (monotonic); true when finished.
        def wait(timeout)
          deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
          @lock.synchronize do
            until @done
              left = deadline - Process.clock_gettime(Process::CLOCK_MONOTONIC)
              return false if left <= 0

              @cond.wait(@lock, left)
            end
            true
          end
        end
      end

      def initialize
        @lock = Mutex.new
        @flights = {}
      end

      # Runs the block for +key+ unless a flight is already running; then waits
      # for it (at most +timeout+ seconds) and shares its outcome.
      #
      # @raise [SingleFlight::Timeout] when the wait outlives +timeout+
      def run(key, timeout)
        leader = false
        flight = @lock.synchronize do
          @flights[key] ||= begin
            leader = true
            Flight.new
          end
        end
        unless leader
          raise Timeout, "single-flight wait timed out" unless flight.wait(timeout)
          raise flight.error if flight.error

          return flight.value
        end
        begin
          value = yield
          flight.finish(value, nil)
          value
        rescue StandardError => e
          flight.finish(nil, e)
          raise
        ensure
          @lock.synchronize { @flights.delete(key) }
          flight.finish(nil, RuntimeError.new("secinfra: cache: the shared request was abandoned")) unless flight.done
        end
      end
    end
  end
end
