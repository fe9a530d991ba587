# frozen_string_literal: true

module Secinfra
  module Runtime
    # The clocks the runtime reads: a monotonic one for durations and the wall
    # clock for certificates and HTTP-dates (spec 1.5). Tests replace it.
    class SystemClock
      # @return [Float] monotonic seconds
      def monotonic = Process.clock_gettime(Process::CLOCK_MONOTONIC)

      # @return [Time] the wall-clock time, UTC
      def now = Time.now.utc

      # Sleeps +seconds+ (no-op when not positive).
      def sleep(seconds)
        Kernel.sleep(seconds) if seconds.positive?
      end
    end
  end
end
