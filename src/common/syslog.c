/* syslog.c - the syslog destination, kept in its own file because <syslog.h> defines LOG_ERR,
 * LOG_INFO, ... which clash with enum log_level. */
#include <syslog.h>

void syslog_line(int priority, const char *msg);

/* Sends one line to syslog under the "ternd" ident. */
void syslog_line(int priority, const char *msg)
{
    syslog(LOG_DAEMON | priority, "%s", msg);
}
