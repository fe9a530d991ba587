# frozen_string_literal: true

require "test_helper"

# One request for concurrent misses of one key (runtime/single_flight.rb).
class SingleFlightTest < Minitest::Test
  def test_single_flight_shares_one_run
    flights = Secinfra::Runtime::SingleFlight.new
    runs = 0
    gate = Queue.new
    threads = Array.new(10) do
      Thread.new do
        flights.run("k", 5) do
          runs += 1
          gate.pop
          :answer
        end
      end
    end
    sleep 0.1
    gate << true
    assert_equal [:answer] * 10, threads.map(&:value)
    assert_equal 1, runs
  end

  def test_single_flight_waiter_times_out_and_errors_are_shared
    flights = Secinfra::Runtime::SingleFlight.new
    gate = Queue.new
    leader = Thread.new { flights.run("k", 5) { gate.pop || raise(ArgumentError, "boom") } }
    leader.report_on_exception = false
    sleep 0.05
    assert_raises(Secinfra::Runtime::SingleFlight::Timeout) { flights.run("k", 0.05) { :never } }
    waiter = Thread.new do
      flights.run("k", 5) { :never }
    rescue ArgumentError => e
      e.message
    end
    sleep 0.05
    gate << false
    assert_raises(ArgumentError) { leader.value }
    assert_equal "boom", waiter.value
  end
end
