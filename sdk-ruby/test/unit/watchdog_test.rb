# frozen_string_literal: true

require "test_helper"

class WatchdogTest < Minitest::Test
  Watchdog = Secinfra::Runtime::AttemptWatchdog
  Expired = Class.new(StandardError)

  def test_a_block_that_outlives_its_time_gets_the_error
    error = assert_raises(Expired) { Watchdog.new.run(0.05, Expired) { sleep 5 } }
    assert_equal "execution expired", error.message
  end

  def test_a_block_that_ends_in_time_gives_its_value_and_is_never_interrupted
    watchdog = Watchdog.new
    assert_equal :done, watchdog.run(0.05, Expired) { :done }
    sleep 0.1 # past the deadline: nothing is raised later
    assert_equal 0, watchdog.instance_variable_get(:@armed).size
  end

  def test_no_bound_for_zero_or_nil
    assert_equal 1, Watchdog.new.run(0, Expired) { 1 }
    assert_equal 2, Watchdog.new.run(nil, Expired) { 2 }
  end

  def test_each_thread_gets_its_own_deadline
    watchdog = Watchdog.shared
    results = Queue.new
    threads = [0.05, 5.0].map do |seconds|
      Thread.new do
        results << [seconds, watchdog.run(seconds, Expired) { sleep(0.3) && :finished }]
      rescue Expired
        results << [seconds, :expired]
      end
    end
    threads.each(&:join)
    assert_equal [[0.05, :expired], [5.0, :finished]], Array.new(2) { results.pop }.sort_by(&:first)
  end
end
