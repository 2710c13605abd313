# ruby-fcgi (Debian's ruby-fcgi, built on libfcgi) for the integration tests
# (tests/realapps.rs): FCGI.each on the listening socket passed as fd 0.
# Routes by query parameter mode: env (the FastCGI parameters, NAME=value lines),
# echo (the request body back, X-Body-Length), error (500 from the application),
# raise (an exception: the process dies mid-request).
require 'fcgi'

FCGI.each do |req|
  env = req.env
  mode = env['QUERY_STRING'].to_s[/(?:^|&)mode=([^&]*)/, 1] || 'env'
  out = req.out
  case mode
  when 'echo'
    body = req.in.read || ''
    out.print "Content-Type: application/octet-stream\r\nX-Body-Length: #{body.bytesize}\r\n\r\n"
    out.print body
  when 'error'
    out.print "Status: 500 Internal Server Error\r\nContent-Type: text/plain\r\n\r\nthe application failed\n"
  when 'raise'
    raise 'boom'
  else
    out.print "Content-Type: text/plain\r\nX-Pid: #{Process.pid}\r\n\r\n"
    env.keys.sort.each { |k| out.print "#{k}=#{env[k]}\n" }
  end
  req.finish
end
