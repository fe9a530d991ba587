# frozen_string_literal: true

require "timeout"

module Secinfra
  module Runtime
    # Bounds a block's run time as Timeout.timeout(seconds, error_class)
    # does, by raising +error_class+ in the block's thread when the time
    # runs out, but with one watchdog thread for every attempt of the
    # process instead of a new thread per call (Ruby 3.1's timeout 0.2.0
    # starts one each time: about 70 µs an attempt). Under a Fiber scheduler
    # it defers to Timeout.timeout, which asks the scheduler. Thread-safe.
    class AttemptWatchdog
      # Timeout.timeout's message.
      MESSAGE = "execution expired"

      # One bounded block: its thread, when it must end, what to raise.
      Armed = Struct.new(:thread, :deadline, :error_class)
      private_constant :Armed

      # The process's watchdog.
      #
      # @return [AttemptWatchdog]
      def self.shared = SHARED

      def initialize
        @lock = Mutex.new
        @wake = ConditionVariable.new
        @armed = []
        @thread = nil
      end

      # Runs the block; raises +error_class+ (message "execution expired") in
      # this thread once it has run +seconds+. Nil or zero: no bound.
      #
      # @return the block's value
      def run(seconds, error_class, &block)
        return yield if seconds.nil? || seconds.zero?
        return Timeout.timeout(seconds, error_class, MESSAGE, &block) if Fiber.current_scheduler

        armed = Armed.new(Thread.current, Process.clock_gettime(Process::CLOCK_MONOTONIC) + seconds, error_class)
        @lock.synchronize do
          start_thread unless @thread&.alive? # none yet, or not in this forked child
          @armed << armed
          @wake.signal
        end
        begin
          yield
        ensure
          # A fired entry is already gone: the watchdog removes it before raising.
          @lock.synchronize { @armed.delete(armed) }
        end
      end

      def inspect = "#<Secinfra::Runtime::AttemptWatchdog armed=#{@lock.synchronize { @armed.size }}>"
      alias to_s inspect

      private

      def start_thread
        @thread = Thread.new { watch }
        @thread.name = "secinfra-attempt-watchdog"
        @thread.report_on_exception = false
      end

      # Raises into every thread whose time ran out; sleeps until the next deadline or a new entry.
      def watch
        @lock.synchronize do
          loop do
            now = Process.clock_gettime(Process::CLOCK_MONOTONIC)
            due, @armed = @armed.partition { |a| a.deadline <= now }
            due.each { |a| a.thread.raise(a.error_class, MESSAGE) }
            next_deadline = @armed.map(&:deadline).min
            next_deadline ? @wake.wait(@lock, next_deadline - now) : @wake.wait(@lock)
          end
        end
      end

      SHARED = new
    end
  end
end
