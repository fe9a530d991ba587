# frozen_string_literal: true

module Secinfra
  # A rotation event (spec 9.8).
  #
  # @!attribute [r] kind
  #   @return [Symbol] :enrolled, :renewed, :renewal_failed, :expired or :bundle_updated
  # @!attribute [r] identity
  #   @return [X509Identity, nil] the snapshot current after the change
  # @!attribute [r] bundle
  #   @return [TrustBundle] the bundle current after the change
  # @!attribute [r] error
  #   @return [Exception, nil] for :renewal_failed and :expired
  RotationEvent = Struct.new(:kind, :identity, :bundle, :error, keyword_init: true)

  # Delivers rotation events to subscribers in order, from one thread that
  # holds no lock a call needs (spec 9.8.4, 9.8.5).
  class EventDispatcher
    def initialize(logger)
      @logger = logger
      @subscribers = []
      @lock = Mutex.new
      @queue = Queue.new
      @thread = nil
    end

    # @param callable [#call]
    def subscribe(callable)
      @lock.synchronize { @subscribers << callable }
    end

    # Queues +event+ for delivery to every subscriber.
    def emit(event)
      @lock.synchronize do
        @thread ||= Thread.new { run }.tap { |t| t.name = "secinfra-events" }
      end
      @queue << event
    end

    # Stops the delivery thread after the queued events.
    def close
      thread = @lock.synchronize { @thread }
      return if thread.nil?

      @queue << :stop
      thread.join(5)
    end

    private

    def run
      loop do
        event = @queue.pop
        break if event == :stop

        subscribers = @lock.synchronize { @subscribers.dup }
        subscribers.each do |s|
          s.call(event)
        rescue StandardError => e
          @logger.warn("secinfra: identity: a rotation subscriber failed: #{e.class}: #{e.message}")
        end
      end
    end
  end
end
